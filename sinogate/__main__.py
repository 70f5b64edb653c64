from sinogate.cli import main

main()
