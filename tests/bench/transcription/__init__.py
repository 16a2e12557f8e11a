"""Parts of the transcription benchmark (`tests/bench/bench_transcription.py`)."""
