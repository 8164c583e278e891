"""Records and taxonomy: the row types stages exchange, the tag taxonomy, tag-set data, licences."""
