"""``python -m edgec`` and the ``edgec`` command: start the interpreter process, then run the CLI."""


def run() -> None:
    from edgec.runtime import sandbox

    sandbox.prestart()  # its imports overlap the library's: `edgec check` answers sooner
    from edgec.cli import main

    main()


if __name__ == "__main__":
    run()
