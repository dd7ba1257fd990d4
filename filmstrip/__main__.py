from filmstrip.cli import entry

entry()
