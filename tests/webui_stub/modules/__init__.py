"""Stand-in for the sd-webui ``modules`` package (A1111 v1.10.1, with a Forge flavour)."""

FLAVOR = "a1111"


def set_flavor(name):
    """Switch between the A1111 and Forge behaviours the glue has to cope with."""
    global FLAVOR
    if name not in ("a1111", "forge"):
        raise ValueError(name)
    FLAVOR = name
    from modules import scripts

    scripts.PostprocessImageArgs = (
        scripts.ForgePostprocessImageArgs if name == "forge" else scripts.A1111PostprocessImageArgs
    )
