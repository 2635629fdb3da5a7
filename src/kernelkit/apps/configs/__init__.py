"""Configs of recipes and commands: one dataclass per recipe or command, with quick and full presets."""
