"""``python -m mmlab.testing``: serve a stand-in until killed, its base URL on stdout's first
line."""

from mmlab.testing.standin import main

if __name__ == "__main__":
    main()
