"""fs/dax.c of each era, one module each, with the DAX side of the file system that era's designs
run on (ext2 for the seed patch and 4.0; ext4 from 4.7): its ``get_block``/``iomap_begin``, its
fault wrappers and its truncate.  Shared code calls "the kernel's fs/dax.c" through an alias the
linker binds per design (:mod:`faultlab.kernel.image`)."""
