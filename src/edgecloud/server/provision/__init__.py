"""The provision runner: turns a provision's operation into provider calls, host
configuration and objects registered in the front-end, one logged step at a time."""
