"""The reliability campaign (issue 10): ``python -m tests.reliability.chaos`` (``make chaos``)
drives simulated workloads through real ``qldb-settle`` processes while injecting faults, and the
hostile-input and fuzz tests of ``make test`` feed the whole pipeline what a hostile stream can
hold. ``docs/reliability.md`` says what is guaranteed and how an operator acts."""
