"""Everything that moves messages: the embedded broker, topics, the Faust app and the clients."""
