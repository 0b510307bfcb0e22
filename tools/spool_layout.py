"""What the spool seed writers (tools/spool_seed_*.py) share of
pipeline/spool_segment.c's entry layout: the magic and the CRC-32C every
entry's header and payload carry."""

MAGIC = bytes([0x93, 0x53, 0x4C, 0x45])


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), bit by bit: seeds are small."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
