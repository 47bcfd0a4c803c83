from ftkit.cli import main

if __name__ == "__main__":  # spawned worker processes (vLLM, data loaders) import this module again
    raise SystemExit(main())
