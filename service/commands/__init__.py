"""`kimi-asr` subcommands that run or talk to the job service."""
