"""`kimi-asr` subcommands that need only the model package."""
