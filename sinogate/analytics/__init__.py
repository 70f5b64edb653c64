"""Pure analytics shared by the live pipeline handlers and recalculation over history."""
