"""Kimi-Audio ASR: faithful prompt building, a vLLM model plugin and a persistent Transcriber."""
