"""Audio backends: the models that turn prompts into audio (one family, :data:`AUDIO_BACKENDS`).

:mod:`~tagtune.tta.backends.base` holds what every backend shares (the :class:`AudioBackend`
Protocol, :class:`SamplingParams`, :func:`steps_for_duration`, :func:`load_backend`); each member
lives in its own module (``musicgen``: transformers MusicGen, ``audiocraft``, ``synth``). A new
backend is one module plus one ``model/tta/*.yaml`` naming it as ``backend: package.module:Class``.
"""
