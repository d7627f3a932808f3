"""One module per `classcap` command: each reads its arguments, runs the runtime in `pipeline/`
and tells the person at the terminal what happened. Commands import the runtime and `common`
(the shared output helper), never one another; the runtime never imports them.

Each module has `add_parser(commands)`, which adds its subcommand to the parser `pipeline.cli`
builds, and sets the function that runs it.
"""
