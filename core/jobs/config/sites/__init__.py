"""Site presets that extend the bundled job templates."""
