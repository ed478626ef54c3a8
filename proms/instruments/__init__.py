"""Instruments as data: definition files, their validation, a registry, FHIR and REDCap import.

Pure like `proms.scoring`: no Flask, no SQLAlchemy. A definition file under `definitions/` is
validated against `schema.json` plus the checks a schema cannot express (loader.py), becomes a
frozen `InstrumentDefinition` (model.py) and builds the scoring form (`definition.form()`).
"""
