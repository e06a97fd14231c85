"""Grades the submission in <autograder dir>/submission with otter (run_autograder calls this)."""
import sys

from otter.run.run_autograder import main

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/autograder")
