"""gdlab: the GuardDuty 'Compromised EC2 Instance' lab as one repeatable, verifiable command."""

__version__ = "0.1.0"
