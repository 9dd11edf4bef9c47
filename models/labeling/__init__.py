"""Reading radiology text: a CheXpert-style labeler (mentions, negation, uncertainty) and its phrase lists.

Below both :mod:`models.report` (which reads generated sentences back) and :mod:`models.metrics` (which
scores clinical efficacy), so neither imports the other.
"""
