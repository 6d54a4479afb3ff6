"""Conversion of the in-memory model into what ships: the int8 flatbuffer and C sources."""
