"""``modules.shared_state.State``: job progress, interrupt and skip."""

import time


class State:
    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    sampling_step = 0
    sampling_steps = 0
    textinfo = None
    time_start = None

    def __init__(self):
        self.history = []

    def skip(self):
        self.skipped = True

    def interrupt(self):
        self.interrupted = True

    def nextjob(self):
        self.job_no += 1
        self.sampling_step = 0

    def begin(self, job="(unknown)"):
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job = job
        self.history.append(("begin", job))
        from modules import devices

        devices.torch_gc()

    def end(self):
        self.history.append(("end", self.job))
        self.job = ""
        self.job_count = 0
        from modules import devices

        devices.torch_gc()

    def dict(self):
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "job": self.job,
            "job_count": self.job_count,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }
