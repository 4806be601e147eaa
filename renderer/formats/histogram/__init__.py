# generated, do not edit: scripts/generate-formats
# flatc version 2.0.8
