"""Where a journal export enters: QLDB's ``ExportJournalToS3`` output, read back into the buffer.

An export is another way the same journal blocks enter the system, so it lives under ``ingest``
beside the stream decoder and ends in the same place: ``SettlingBuffer.put``, with the records the
stream would have delivered (one BLOCK_SUMMARY and one REVISION_DETAILS per user revision) under
the same deterministic ids. A block delivered by both is a duplicate, and different content for
one block address is a conflict. The settler treats every block alike but for one flag: records
of a JSON Lines export are marked down-converted (``ingest.export.origin``), so the revision
hashes their lost Ion types prevent are reported as not possible, not failed (docs/export.md).

- ``ingest.export.store``: where the objects are (``FolderStore``: a local folder laid out like the
  bucket prefix; ``S3Store``: ``s3://BUCKET/PREFIX`` through boto3), behind one small port.
- ``ingest.export.manifest``: the started manifest (the request) and the completed manifest of
  each strand (which data objects, in which order).
- ``ingest.export.objects``: one data object, Ion text, Ion binary or JSON Lines (detected), block
  by block; a truncated object yields its good blocks, then the error.
- ``ingest.export.blocks``: the whole-block checks an export allows (``entriesHashList`` →
  ``entriesHash`` → ``blockHash``, the revisions committed by the entries) and the block turned
  into stream records.
- ``ingest.export.origin``: the mark each record carries in its stream id (an Ion export, or a
  JSON Lines one whose documents were down-converted), read by the settler.
- ``ingest.export.service``: the core, ``ingest_export``: exports in order, objects in manifest
  order, the chain checked link by link across objects and exports, one ``put`` per object.

Imports neither ionhash nor pyqldb (the ingest Lambda ships amazon.ion 0.15): revision hashes and
statement digests, which need the Ion hash, are checked by the settler as for stream records.
"""
