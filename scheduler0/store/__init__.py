"""The sqlite database: schema, connections and the read side of the state."""
