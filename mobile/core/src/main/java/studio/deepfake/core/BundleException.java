package studio.deepfake.core;

/** A bundle, golden file or image the user supplied is unusable; the message says why. */
public class BundleException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }

    public BundleException(String message, Throwable cause) {
        super(message, cause);
    }
}
