"""``python -m edgec`` and the ``edgec`` command: start the interpreter process, then run the CLI."""


_INTERPRETING = ("check", "build", "emit-c")  # the commands that run models in the interpreter process


def run() -> None:
    import sys

    if any(arg in _INTERPRETING for arg in sys.argv[1:]):
        from edgec.runtime import sandbox

        sandbox.prestart()  # its imports overlap the library's: `edgec check` answers sooner
    from edgec.cli import main

    main()


if __name__ == "__main__":
    run()
