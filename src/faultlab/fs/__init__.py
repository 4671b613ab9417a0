"""File systems: each file kind's operation records (``FileSystemType``, ``vm_operations_struct``,
``file_operations``...).  ``shmem`` (tmpfs) and ``ext4`` are the page-cache kinds of the 3.15-4.x
eras; ``xip`` is 3.14's ext2 execute-in-place; ``dax`` holds fs/dax.c of each era, with the DAX
side of the file system that era's designs ran on (ext2 for 4.0, ext4 from 4.7)."""
