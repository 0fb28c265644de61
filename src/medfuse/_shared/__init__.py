"""Layer 1: what every layer may use and none owns: the error base and its kinds
(:mod:`~medfuse._shared.errors`), input checks (:mod:`~medfuse._shared.checks`), the
add-by-name registry (:mod:`~medfuse._shared.registry`), files written whole or not at all
and digests (:mod:`~medfuse._shared.files`), libraries loaded on first use
(:mod:`~medfuse._shared.lazy`), the optional extras and the one error for a missing library
(:mod:`~medfuse._shared.optional`). Standard library only."""
