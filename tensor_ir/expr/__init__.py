"""Vespa ranking expressions: tensor types, the parser and the compiler to tensor programs."""
