"""Example tagtune plugins: one member each of four extension families (see docs/extending.md).

* ``exporters.CsvExporter`` (``--format csv``): a CSV manifest per split, the clips beside it;
* ``checkers.RmsChecker`` (``verification.checkers=[rms]``): a tag is realised when the clip is loud enough;
* ``audio.SineBackend`` (``model.backend=sine``): every caption rendered as a chord of sine tones;
* ``captions.ShoutBackend`` (``model.backend=shout``): the tags joined, in upper case.

Nothing here is imported by tagtune until a config names a member.
"""

__version__ = "0.1.0"
