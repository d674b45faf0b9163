"""The local exchange sandbox: replays CSV candles as ticks over the brokers' wire protocols."""
