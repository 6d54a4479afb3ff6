"""Emit: the firmware artifacts.

``c_array`` writes the 16-byte aligned model array and the settings header from
``templates/``, ``codegen`` the interpreter-free C (checked bit for bit against
TFLite-Micro by ``codegen.crosscheck``), and ``artifacts`` writes them all or
nothing.
"""
