# d2l.ai, chapter "Dropout", the PyTorch "implementation from scratch" code, re-typed. The only
# changes: the chapter's `def dropout_layer` is replaced by the import line below, and the
# chapter's d2l.load_data_fashion_mnist / d2l.train_ch3 (which download Fashion-MNIST) are
# replaced by a few lines of training on small synthetic data of Fashion-MNIST's shape.
import torch
from torch import nn
from cydrop.compat.d2l import dropout_layer

X = torch.arange(16, dtype = torch.float32).reshape((2, 8))
print(X)
print(dropout_layer(X, 0.))
print(dropout_layer(X, 0.5))
print(dropout_layer(X, 1.))

num_inputs, num_outputs, num_hiddens1, num_hiddens2 = 784, 10, 256, 256

dropout1, dropout2 = 0.2, 0.5

class Net(nn.Module):
    def __init__(self, num_inputs, num_outputs, num_hiddens1, num_hiddens2,
                 is_training = True):
        super(Net, self).__init__()
        self.num_inputs = num_inputs
        self.training = is_training
        self.lin1 = nn.Linear(num_inputs, num_hiddens1)
        self.lin2 = nn.Linear(num_hiddens1, num_hiddens2)
        self.lin3 = nn.Linear(num_hiddens2, num_outputs)
        self.relu = nn.ReLU()

    def forward(self, X):
        H1 = self.relu(self.lin1(X.reshape((-1, self.num_inputs))))
        # Use dropout only when training the model
        if self.training == True:
            # Add a dropout layer after the first fully connected layer
            H1 = dropout_layer(H1, dropout1)
        H2 = self.relu(self.lin2(H1))
        if self.training == True:
            # Add a dropout layer after the second fully connected layer
            H2 = dropout_layer(H2, dropout2)
        out = self.lin3(H2)
        return out

net = Net(num_inputs, num_outputs, num_hiddens1, num_hiddens2)

num_epochs, lr, batch_size = 10, 0.5, 256
loss = nn.CrossEntropyLoss(reduction='none')

# --- stand-in for d2l.load_data_fashion_mnist(batch_size) and d2l.train_ch3(...)
NUM_EPOCHS = globals().get("NUM_EPOCHS", num_epochs)
g = torch.Generator().manual_seed(0)
protos = torch.randn(10, 1, 28, 28, generator=g)
labels = torch.randint(10, (1024,), generator=g)
images = protos[labels] + 0.5 * torch.randn(1024, 1, 28, 28, generator=g)
trainer = torch.optim.SGD(net.parameters(), lr=lr)
train_losses = []
for epoch in range(NUM_EPOCHS):
    net.train()
    for i in range(0, len(images), batch_size):
        l = loss(net(images[i:i + batch_size]), labels[i:i + batch_size])
        trainer.zero_grad()
        l.mean().backward()
        trainer.step()
        train_losses.append(float(l.detach().mean()))
net.eval()
with torch.no_grad():
    train_acc = float((net(images).argmax(1) == labels).float().mean())
print(f"train acc {train_acc:.3f}")
