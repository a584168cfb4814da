"""cardd assess: claim rules, photo checks, placement on parts, findings."""
