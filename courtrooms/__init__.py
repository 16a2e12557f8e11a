"""The court's registry: courts, courtrooms, prison terminals, hearings, participants, audit."""
