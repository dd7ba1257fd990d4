from filmstrip.cli import main

main()
