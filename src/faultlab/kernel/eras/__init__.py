"""The generic fault code of each era, one module each, as that era's mm/memory.c has it.

An era module defines the functions its kernel changed and takes the rest from an earlier era
(``from faultlab.kernel.eras.v3_15 import handle_mm_fault``); a design's kernel image links them so
that a function taken unchanged calls the era's own versions (see :mod:`faultlab.kernel.image`).
An era module is meant to be run linked, through a design.
"""
