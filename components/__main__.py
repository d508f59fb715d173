from components.cli import entry

entry()
