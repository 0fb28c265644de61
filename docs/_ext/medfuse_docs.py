"""Two Sphinx directives that write pages from the code, so that they cannot drift from it.

``medfuse-cli``: the command-line reference, one section per command, each holding the text that
``medfuse COMMAND --help`` prints (the parsers of :mod:`medfuse.cli` are built and asked, nothing is
copied by hand).

``medfuse-public``: an autodoc entry for every name that ``import medfuse`` offers
(``medfuse._PUBLIC``), in that order.

:func:`command_helps` is plain Python (no Sphinx), so that the tests can call it without the
documentation tools installed.
"""

from __future__ import annotations

import argparse
import inspect
import os

HELP_WIDTH = 100  # columns of the rendered --help, whatever the terminal that builds the site


def _with_width(render):
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        return render()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _command_parser(name: str) -> argparse.ArgumentParser:
    from medfuse.cli import build_parser

    parser = build_parser(name)
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[name]


def command_helps() -> list[tuple[str, str, str]]:
    """``(command, summary, help text)`` for ``medfuse`` itself (command ``""``) and each of its
    commands, in the order of :data:`medfuse.cli.COMMANDS`."""
    from medfuse.cli import COMMANDS, build_parser

    helps = [("", "Multimodal medical image fusion with DRAN.", _with_width(lambda: build_parser().format_help()))]
    for name, summary in COMMANDS.items():
        helps.append((name, summary, _with_width(lambda name=name: _command_parser(name).format_help())))
    return helps


def _public_entry(name: str) -> str:
    """The reStructuredText autodoc directive for ``medfuse.NAME``, by what kind of object it is; a
    constant gets its value and a pointer to the module that defines (and documents) it."""
    import medfuse

    value = getattr(medfuse, name)
    if inspect.isclass(value) and issubclass(value, BaseException):
        return f".. autoexception:: medfuse.{name}\n"
    if inspect.isclass(value):
        return f".. autoclass:: medfuse.{name}\n   :members:\n"
    if callable(value):
        return f".. autofunction:: medfuse.{name}\n"
    home = medfuse._PUBLIC[name]
    return f".. py:data:: medfuse.{name}\n   :value: {value!r}\n\n   As :data:`{home}.{name}`.\n"


def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList

    class CommandLineReference(Directive):
        has_content = False

        def run(self):
            sections = []
            for name, summary, text in command_helps():
                title = f"medfuse {name}".strip()
                section = nodes.section(ids=[nodes.make_id(f"command-{name or 'medfuse'}")], names=[title])
                section += nodes.title(text=title)
                section += nodes.paragraph(text=summary[0].upper() + summary[1:] + ".")
                block = nodes.literal_block(text, text)
                block["language"] = "text"
                section += block
                self.state.document.note_implicit_target(section)
                sections.append(section)
            return sections

    class PublicNames(Directive):
        has_content = False

        def run(self):
            import medfuse

            text = "\n".join(_public_entry(name) for name in medfuse._PUBLIC)
            lines = StringList(["```{eval-rst}", *text.splitlines(), "```"], "medfuse-public")
            container = nodes.container()
            self.state.nested_parse(lines, self.content_offset, container)
            return container.children

    app.add_directive("medfuse-cli", CommandLineReference)
    app.add_directive("medfuse-public", PublicNames)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
