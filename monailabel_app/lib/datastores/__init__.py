"""Datastores: the local case store and a DICOMweb PACS, both refusing unsafe ids and invalid uploads."""
