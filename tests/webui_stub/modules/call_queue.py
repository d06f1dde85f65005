import threading

# A1111 uses a FIFOLock: not re-entrant, like this one.
queue_lock = threading.Lock()
