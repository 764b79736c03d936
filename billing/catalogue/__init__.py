"""What a provider sells: catalogues, policies with their request kinds, packs
(``models``), the TOML presets that describe them and the offers built from
them (``offers``, ``presets/``), and pack pricing (``pricing``, pure)."""
