"""CDK constructs of the Subscriber Feedback Loop, one module per concern."""
