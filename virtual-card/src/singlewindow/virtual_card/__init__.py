"""The virtual E-Port card (vpcd emulator) and the development CA that issues it."""
