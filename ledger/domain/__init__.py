"""The domain: subjects, the catalogue, the credit file and its records, integrity seals, errors. No I/O."""
