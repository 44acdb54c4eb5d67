"""``KEY=VALUE`` command-line pairs as a dict (values decoded as JSON when they are JSON)."""

import json

from ghnerf.base.errors import OptionError


def parse_key_values(pairs: list[str] | None, option: str, example: str = "key=value",
                     decode_json: bool = True) -> dict | None:
    """``pairs`` as a dict, or None when there are none. With ``decode_json``, ``anon=true`` is ``True``,
    ``client_kwargs={"region_name": "eu-west-1"}`` a dict, and anything that is not JSON stays a string; without it
    every value stays a string.

    Raises:
        OptionError: a pair without ``=`` or without a key (names ``--option`` and shows ``example``).
    """
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"--{option} expects KEY=VALUE (e.g. {example}), got {pair!r}")
        out[key] = value
        if decode_json:
            try:
                out[key] = json.loads(value)
            except ValueError:
                pass
    return out
