"""The embedded local cloud: moto's server plus gdlab's simulation of what moto lacks.

Only this package (and tests) imports moto."""
