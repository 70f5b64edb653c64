"""Runs the user's message plugins (``/gw/plugins``, see ``sinogate.analytics.plugins``).

Placed after the time check and before the filters, so a computed or LBS position is what the
filters and analytics see. A plugin that fails on a message is counted in its status and skipped;
the message goes on.
"""

from __future__ import annotations

from sinogate.analytics.plugins import PluginError, PluginRunner, PluginSet, remember_previous
from sinogate.pipeline.base import Context, Handler, Message


class Plugins(Handler):
    name = "plugins"
    needs = ("plugins", "plugin_runner")

    def __init__(self, config: dict[str, object], plugins: PluginSet, plugin_runner: PluginRunner) -> None:
        super().__init__(config)
        self._plugins = plugins
        self._runner = plugin_runner

    def handle(self, message: Message, ctx: Context) -> Message:
        device = ctx.device
        if device is None:
            return message
        plugins = self._plugins.for_device(device)
        if not plugins:
            return message
        state = ctx.state(self.name)
        for plugin in plugins:
            if plugin.validate is not None and not plugin.validate.matches(message):
                continue
            try:
                self._runner.apply(plugin, message, state)
                plugin.applied += 1
            except PluginError as exc:
                plugin.errors += 1
                plugin.last_error = str(exc)
        remember_previous(plugins, message, state)
        return message
