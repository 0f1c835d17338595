"""The lab lifecycle core: state, journal, plan, setup/teardown, trigger, watch, verify.

It returns plain data and raises gdlab.errors types; it never prints."""
