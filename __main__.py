"""Pulumi entry point: stack config -> spec -> topology -> exports.

All logic lives in ``components.program`` so that ``standby plan`` can run the very same
program under mocks.
"""

from components.program import main

main()
