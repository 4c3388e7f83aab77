"""The service layer: every write goes through these functions, in one transaction each."""
