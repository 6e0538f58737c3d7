"""The QLDB destination through pyqldb, against ``serve-qldb`` started as a real subprocess."""
